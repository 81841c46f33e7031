from otter.test_files import test_case

OK_FORMAT = False

name = "q6_model"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_model6_trained(model6):
    from convlab import checks
    checks.is_trained(model6, 'model6')
    checks.output_layer(model6, 10, 'softmax', name='model6')

@test_case(points=1.5, hidden=True)
def test_model6_dropout(model6):
    from convlab import checks
    checks.dropout_after_dense(model6, min_rate=0.05, max_rate=0.8, name='model6')
    checks.output_layer(model6, 10, 'softmax', name='model6')
    checks.compiled_with(model6, optimizer='SGD', loss='sparse_categorical_crossentropy', metric='accuracy', name='model6')

@test_case(points=2, hidden=True)
def test_model6_accuracy(model6):
    from convlab import checks
    checks.accuracy_at_least(model6, 'cifar10', checks.threshold('lab5_cnn', 'model6'), 'model6')

