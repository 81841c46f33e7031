from otter.test_files import test_case

OK_FORMAT = False

name = "q4_answers"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_answer_types_4(accuracy_4, layers_without_params_4, input_shape_4):
    from convlab import public as checks
    checks.is_fraction(accuracy_4, 'accuracy_4')
    checks.is_string_list(layers_without_params_4, 'layers_without_params_4')
    checks.is_shape(input_shape_4, 'input_shape_4')

