from otter.test_files import test_case

OK_FORMAT = False

name = "q7_ablation"
points = 2

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_ablation_trained(nin_ablation, ABLATION_EPOCHS, BATCH_SIZE, y_train):
    from convlab import public as checks
    checks.trained_steps(nin_ablation, ABLATION_EPOCHS, BATCH_SIZE, len(y_train), 'nin_ablation')

