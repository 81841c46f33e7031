from otter.test_files import test_case

OK_FORMAT = False

name = "q5_training"
points = 6

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_nin_trained(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')

@test_case(points=1, hidden=True)
def test_nin_adamw(nin):
    from convlab import checks
    checks.adamw_weight_decay(nin, 'nin')

@test_case(points=1.5, hidden=True)
def test_schedule_attached(nin, LR_0, LR_MIN, EPOCHS):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.schedule_attached(nin, LR_0, LR_MIN, EPOCHS, 'nin')

@test_case(points=3, hidden=True)
def test_nin_accuracy(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.accuracy_at_least(nin, 'cifar10', checks.threshold('lab6_nin', 'nin'), 'nin')

