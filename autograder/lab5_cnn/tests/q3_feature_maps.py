from otter.test_files import test_case

OK_FORMAT = False

name = "q3_feature_maps"
points = 2

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_grid_shape(fig):
    from convlab import public as checks
    checks.image_grid(fig, rows=4, cols=4)

@test_case(points=1.5, hidden=True)
def test_feature_maps(fig, model2):
    from convlab import checks
    checks.feature_map_grid(fig, model2, [checks.train_image('mnist', 10)], dataset='mnist')

