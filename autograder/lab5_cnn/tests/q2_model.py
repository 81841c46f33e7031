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

@test_case(points=1, hidden=True)
def test_model2_batchnorm(model2):
    from convlab import checks
    checks.batchnorm_after(model2, ['Conv2D'], name='model2')
    checks.output_layer(model2, 10, 'softmax', name='model2')
    checks.compiled_with(model2, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model2')

@test_case(points=0.5, hidden=True)
def test_model2_training(model2):
    from convlab import checks
    checks.trained_as_prescribed(model2, epochs=3, batch_size=128, train_size=checks.train_size('mnist'), name='model2')

@test_case(points=0.5, hidden=True)
def test_model2_accuracy_1(model2):
    from convlab import checks
    checks.accuracy_step(model2, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=1, steps=3, name='model2')

@test_case(points=0.5, hidden=True)
def test_model2_accuracy_2(model2):
    from convlab import checks
    checks.accuracy_step(model2, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=2, steps=3, name='model2')

@test_case(points=0.5, hidden=True)
def test_model2_accuracy_3(model2):
    from convlab import checks
    checks.accuracy_step(model2, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=3, steps=3, name='model2')

@test_case(points=0.5, hidden=True)
def test_model2_better(model2, model1):
    from convlab import checks
    checks.fitted_on_training_split(model2, 'mnist', 'model2')
    checks.more_accurate(model2, model1, 'mnist', 'model2', 'model1')

