from otter.test_files import test_case

OK_FORMAT = False

name = "q1_model"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model1_trained(model1):
    from convlab import public as checks
    checks.is_trained(model1, 'model1')

@test_case(points=0.5, hidden=True)
def test_model1_architecture(model1):
    from convlab import checks
    checks.layer_sequence(model1, ['Conv2D 16 3x3 same relu', 'MaxPool 2', 'Conv2D 32 3x3 same relu', 'MaxPool 2', 'Conv2D 64 3x3 same relu', 'Flatten', 'Dense 10 softmax'], name='model1')
    checks.compiled_with(model1, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model1')

@test_case(points=0.5, hidden=True)
def test_model1_training(model1):
    from convlab import checks
    checks.trained_as_prescribed(model1, epochs=3, batch_size=128, train_size=checks.train_size('mnist'), name='model1')

@test_case(points=0.375, hidden=True)
def test_model1_accuracy_1(model1):
    from convlab import checks
    checks.accuracy_step(model1, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=1, steps=4, name='model1')

@test_case(points=0.375, hidden=True)
def test_model1_accuracy_2(model1):
    from convlab import checks
    checks.accuracy_step(model1, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=2, steps=4, name='model1')

@test_case(points=0.375, hidden=True)
def test_model1_accuracy_3(model1):
    from convlab import checks
    checks.accuracy_step(model1, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=3, steps=4, name='model1')

@test_case(points=0.375, hidden=True)
def test_model1_accuracy_4(model1):
    from convlab import checks
    checks.accuracy_step(model1, 'mnist', floor=checks.floor('lab5_cnn', 'model1'), threshold=checks.threshold('lab5_cnn', 'model1'), step=4, steps=4, name='model1')

