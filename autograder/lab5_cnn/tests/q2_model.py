from otter.test_files import test_case

OK_FORMAT = False

name = "q2_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model2_trained(model2):
    from convlab import checks
    checks.is_trained(model2, 'model2')
    checks.output_layer(model2, 10, 'softmax', name='model2')

@test_case(points=1.5, hidden=True)
def test_model2_batchnorm(model2):
    from convlab import checks
    checks.batchnorm_after(model2, ['Conv2D'], name='model2')
    checks.output_layer(model2, 10, 'softmax', name='model2')
    checks.compiled_with(model2, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model2')

@test_case(points=2, hidden=True)
def test_model2_accuracy(model2, model1):
    from convlab import checks
    checks.accuracy_at_least(model2, 'mnist', checks.threshold('lab5_cnn', 'model1'), 'model2')
    checks.more_accurate(model2, model1, 'mnist', 'model2', 'model1')

