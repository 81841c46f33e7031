from otter.test_files import test_case

OK_FORMAT = False

name = "q6_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model6_trained(model6):
    from convlab import public as checks
    checks.is_trained(model6, 'model6')
    checks.output_layer(model6, 10, 'softmax', name='model6')

@test_case(points=1, hidden=True)
def test_model6_dropout(model6):
    from convlab import checks
    checks.dropout_after_dense(model6, min_rate=0.05, max_rate=0.8, name='model6')
    checks.output_layer(model6, 10, 'softmax', name='model6')
    checks.compiled_with(model6, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model6')

@test_case(points=0.5, hidden=True)
def test_model6_training(model6):
    from convlab import checks
    checks.trained_as_prescribed(model6, epochs=15, batch_size=128, train_size=checks.train_size('cifar10'), name='model6')

@test_case(points=0.5, hidden=True)
def test_model6_accuracy_1(model6):
    from convlab import checks
    checks.accuracy_step(model6, 'cifar10', floor=checks.floor('lab5_cnn', 'model6'), threshold=checks.threshold('lab5_cnn', 'model6'), step=1, steps=4, name='model6')

@test_case(points=0.5, hidden=True)
def test_model6_accuracy_2(model6):
    from convlab import checks
    checks.accuracy_step(model6, 'cifar10', floor=checks.floor('lab5_cnn', 'model6'), threshold=checks.threshold('lab5_cnn', 'model6'), step=2, steps=4, name='model6')

@test_case(points=0.5, hidden=True)
def test_model6_accuracy_3(model6):
    from convlab import checks
    checks.accuracy_step(model6, 'cifar10', floor=checks.floor('lab5_cnn', 'model6'), threshold=checks.threshold('lab5_cnn', 'model6'), step=3, steps=4, name='model6')

@test_case(points=0.5, hidden=True)
def test_model6_accuracy_4(model6):
    from convlab import checks
    checks.accuracy_step(model6, 'cifar10', floor=checks.floor('lab5_cnn', 'model6'), threshold=checks.threshold('lab5_cnn', 'model6'), step=4, steps=4, name='model6')

