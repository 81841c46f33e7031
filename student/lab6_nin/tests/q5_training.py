from otter.test_files import test_case

OK_FORMAT = False

name = "q5_training"
points = 6

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_nin_trained(nin, EPOCHS, BATCH_SIZE, y_train):
    from convlab import public as checks
    checks.trained_steps(nin, EPOCHS, BATCH_SIZE, len(y_train), 'nin')

