from otter.test_files import test_case

OK_FORMAT = False

name = "q2_network"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_nin_structure_public(nin):
    from convlab import checks
    checks.nin_network(nin, classes=10, num_1x1=2, name='nin')

