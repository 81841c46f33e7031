from otter.test_files import test_case

OK_FORMAT = False

name = "q1_data"
points = 2

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_mnist_format(x_train, x_test):
    from convlab import public as checks
    checks.image_format(x_train, 'x_train', (28, 28, 1))
    checks.image_format(x_test, 'x_test', (28, 28, 1))

@test_case(points=1.5, hidden=True)
def test_mnist_scaled(x_train, x_test, y_train, y_test):
    from convlab import checks
    checks.scaled_like_raw(x_train, x_test, y_train, y_test, dataset='mnist')

