from otter.test_files import test_case

OK_FORMAT = False

name = "q6_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model6_trained(model6):
    from convlab import public as checks
    checks.is_trained(model6, 'model6')
    checks.output_layer(model6, 10, 'softmax', name='model6')

