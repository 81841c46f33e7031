from otter.test_files import test_case

OK_FORMAT = False

name = "q4_data"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_cifar_format(x_train, x_test, fig4):
    from convlab import public as checks
    checks.image_format(x_train, 'x_train', (32, 32, 3))
    checks.image_format(x_test, 'x_test', (32, 32, 3))
    checks.image_count(fig4, 4, 'fig4')

@test_case(points=1.5, hidden=True)
def test_cifar_scaled(x_train, x_test, y_train, y_test):
    from convlab import checks
    checks.scaled_like_raw(x_train, x_test, y_train, y_test, dataset='cifar10')

@test_case(points=1, hidden=True)
def test_cifar_samples_shown(fig4):
    from convlab import checks
    checks.shows_dataset_images(fig4, 'cifar10', count=4, name='fig4')

