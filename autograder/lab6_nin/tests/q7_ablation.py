from otter.test_files import test_case

OK_FORMAT = False

name = "q7_ablation"
points = 2

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_ablation_trained(nin_ablation, ABLATION_EPOCHS, BATCH_SIZE, y_train):
    from convlab import public as checks
    checks.trained_steps(nin_ablation, ABLATION_EPOCHS, BATCH_SIZE, len(y_train), 'nin_ablation')

@test_case(points=1, hidden=True)
def test_ablation_structure(nin_ablation):
    from convlab import checks
    checks.nin_network(nin_ablation, classes=10, num_1x1=(1, 3), name='nin_ablation')

@test_case(points=0.5, hidden=True)
def test_ablation_schedule(nin_ablation, LR_0, LR_MIN, ABLATION_EPOCHS, BATCH_SIZE):
    from convlab import checks
    checks.submitted_model(nin_ablation, 'nin_ablation')
    checks.schedule_attached(nin_ablation, LR_0, LR_MIN, ABLATION_EPOCHS, BATCH_SIZE, 'nin_ablation')

