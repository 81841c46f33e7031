from otter.test_files import test_case

OK_FORMAT = False

name = "q3_feature_maps"
points = 2

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_grid_shape(fig):
    from convlab import public as checks
    checks.image_grid(fig, rows=4, cols=4)

