from otter.test_files import test_case

OK_FORMAT = False

name = "q4_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model4_trained(model4):
    from convlab import public as checks
    checks.is_trained(model4, 'model4')
    checks.output_layer(model4, 10, 'softmax', name='model4')

@test_case(points=1, hidden=True)
def test_model4_architecture(model4):
    from convlab import checks
    checks.layer_sequence(model4, ['Conv2D 32 3x3 same relu', 'MaxPool 2', 'Conv2D 32 3x3 same relu', 'MaxPool 2', 'Conv2D 64 3x3 same relu', 'MaxPool 2', 'Flatten', 'Dense 128 relu', 'Dense 10 softmax'], name='model4')
    checks.compiled_with(model4, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model4')

@test_case(points=0.5, hidden=True)
def test_model4_training(model4):
    from convlab import checks
    checks.trained_as_prescribed(model4, epochs=15, batch_size=128, train_size=checks.train_size('cifar10'), name='model4')

@test_case(points=0.5, hidden=True)
def test_model4_accuracy_1(model4):
    from convlab import checks
    checks.accuracy_step(model4, 'cifar10', floor=checks.floor('lab5_cnn', 'model4'), threshold=checks.threshold('lab5_cnn', 'model4'), step=1, steps=4, name='model4')

@test_case(points=0.5, hidden=True)
def test_model4_accuracy_2(model4):
    from convlab import checks
    checks.accuracy_step(model4, 'cifar10', floor=checks.floor('lab5_cnn', 'model4'), threshold=checks.threshold('lab5_cnn', 'model4'), step=2, steps=4, name='model4')

@test_case(points=0.5, hidden=True)
def test_model4_accuracy_3(model4):
    from convlab import checks
    checks.accuracy_step(model4, 'cifar10', floor=checks.floor('lab5_cnn', 'model4'), threshold=checks.threshold('lab5_cnn', 'model4'), step=3, steps=4, name='model4')

@test_case(points=0.5, hidden=True)
def test_model4_accuracy_4(model4):
    from convlab import checks
    checks.accuracy_step(model4, 'cifar10', floor=checks.floor('lab5_cnn', 'model4'), threshold=checks.threshold('lab5_cnn', 'model4'), step=4, steps=4, name='model4')

