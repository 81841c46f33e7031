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

