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

@test_case(points=1, hidden=True)
def test_model5_batchnorm(model5):
    from convlab import checks
    checks.batchnorm_after(model5, ['Conv2D', 'Dense'], name='model5')
    checks.output_layer(model5, 10, 'softmax', name='model5')
    checks.compiled_with(model5, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model5')

@test_case(points=0.5, hidden=True)
def test_model5_training(model5):
    from convlab import checks
    checks.trained_as_prescribed(model5, epochs=15, batch_size=128, train_size=checks.train_size('cifar10'), name='model5')

@test_case(points=0.5, hidden=True)
def test_model5_accuracy_1(model5):
    from convlab import checks
    checks.accuracy_step(model5, 'cifar10', floor=checks.floor('lab5_cnn', 'model5'), threshold=checks.threshold('lab5_cnn', 'model5'), step=1, steps=4, name='model5')

@test_case(points=0.5, hidden=True)
def test_model5_accuracy_2(model5):
    from convlab import checks
    checks.accuracy_step(model5, 'cifar10', floor=checks.floor('lab5_cnn', 'model5'), threshold=checks.threshold('lab5_cnn', 'model5'), step=2, steps=4, name='model5')

@test_case(points=0.5, hidden=True)
def test_model5_accuracy_3(model5):
    from convlab import checks
    checks.accuracy_step(model5, 'cifar10', floor=checks.floor('lab5_cnn', 'model5'), threshold=checks.threshold('lab5_cnn', 'model5'), step=3, steps=4, name='model5')

@test_case(points=0.5, hidden=True)
def test_model5_accuracy_4(model5):
    from convlab import checks
    checks.accuracy_step(model5, 'cifar10', floor=checks.floor('lab5_cnn', 'model5'), threshold=checks.threshold('lab5_cnn', 'model5'), step=4, steps=4, name='model5')

