from otter.test_files import test_case

OK_FORMAT = False

name = "q1_model"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model1_trained(model1):
    from convlab import checks
    checks.is_trained(model1, 'model1')

@test_case(points=0.5, hidden=True)
def test_model1_architecture(model1):
    from convlab import checks
    checks.layer_sequence(model1, ['Conv2D 16 3x3 same relu', 'MaxPool 2', 'Conv2D 32 3x3 same relu', 'MaxPool 2', 'Conv2D 64 3x3 same relu', 'Flatten', 'Dense 10 softmax'], name='model1')
    checks.compiled_with(model1, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model1')

@test_case(points=2, hidden=True)
def test_model1_accuracy(model1):
    from convlab import checks
    checks.accuracy_at_least(model1, 'mnist', checks.threshold('lab5_cnn', 'model1'), 'model1')

