from otter.test_files import test_case

OK_FORMAT = False

name = "q3_shapes"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_output_shapes_format(output_shapes):
    from convlab import public as checks
    checks.require(isinstance(output_shapes, list) and bool(output_shapes), 'output_shapes', 'непустой список кортежей', checks.show(output_shapes))
    for shape in output_shapes:
        checks.is_shape(shape, 'output_shapes')

