from otter.test_files import test_case

OK_FORMAT = False

name = "q4_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model4_trained(model4):
    from convlab import public as checks
    checks.is_trained(model4, 'model4')
    checks.output_layer(model4, 10, 'softmax', name='model4')

