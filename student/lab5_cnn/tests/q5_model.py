from otter.test_files import test_case

OK_FORMAT = False

name = "q5_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model5_trained(model5):
    from convlab import public as checks
    checks.is_trained(model5, 'model5')
    checks.output_layer(model5, 10, 'softmax', name='model5')

