from otter.test_files import test_case

OK_FORMAT = False

name = "q5_training"
points = 6

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_nin_trained(nin, EPOCHS, BATCH_SIZE, y_train):
    from convlab import public as checks
    checks.trained_steps(nin, EPOCHS, BATCH_SIZE, len(y_train), 'nin')

@test_case(points=1, hidden=True)
def test_nin_adamw(nin):
    from convlab import checks
    checks.adamw_weight_decay(nin, 'nin')

@test_case(points=1.5, hidden=True)
def test_schedule_attached(nin, LR_0, LR_MIN, EPOCHS, BATCH_SIZE):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.schedule_attached(nin, LR_0, LR_MIN, EPOCHS, BATCH_SIZE, 'nin')

@test_case(points=0.5, hidden=True)
def test_nin_accuracy_1(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.nin_accuracy_step(nin, 1, 6, lab='lab6_nin', key='nin', name='nin')

@test_case(points=0.5, hidden=True)
def test_nin_accuracy_2(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.nin_accuracy_step(nin, 2, 6, lab='lab6_nin', key='nin', name='nin')

@test_case(points=0.5, hidden=True)
def test_nin_accuracy_3(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.nin_accuracy_step(nin, 3, 6, lab='lab6_nin', key='nin', name='nin')

@test_case(points=0.5, hidden=True)
def test_nin_accuracy_4(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.nin_accuracy_step(nin, 4, 6, lab='lab6_nin', key='nin', name='nin')

@test_case(points=0.5, hidden=True)
def test_nin_accuracy_5(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.nin_accuracy_step(nin, 5, 6, lab='lab6_nin', key='nin', name='nin')

@test_case(points=0.5, hidden=True)
def test_nin_accuracy_6(nin):
    from convlab import checks
    checks.submitted_model(nin, 'nin')
    checks.nin_accuracy_step(nin, 6, 6, lab='lab6_nin', key='nin', name='nin')

