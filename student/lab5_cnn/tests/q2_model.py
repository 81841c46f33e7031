from otter.test_files import test_case

OK_FORMAT = False

name = "q2_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model2_trained(model2):
    from convlab import public as checks
    checks.is_trained(model2, 'model2')
    checks.output_layer(model2, 10, 'softmax', name='model2')

