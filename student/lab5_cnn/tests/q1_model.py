from otter.test_files import test_case

OK_FORMAT = False

name = "q1_model"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model1_trained(model1):
    from convlab import public as checks
    checks.is_trained(model1, 'model1')

