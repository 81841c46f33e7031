from otter.test_files import test_case

OK_FORMAT = False

name = "q5_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model5_trained(model5):
    from convlab import checks
    checks.is_trained(model5, 'model5')
    checks.output_layer(model5, 10, 'softmax', name='model5')

@test_case(points=1.5, hidden=True)
def test_model5_batchnorm(model5):
    from convlab import checks
    checks.batchnorm_after(model5, ['Conv2D', 'Dense'], name='model5')
    checks.output_layer(model5, 10, 'softmax', name='model5')
    checks.compiled_with(model5, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model5')

@test_case(points=2, hidden=True)
def test_model5_accuracy(model5):
    from convlab import checks
    checks.accuracy_at_least(model5, 'cifar10', checks.threshold('lab5_cnn', 'model5'), 'model5')

