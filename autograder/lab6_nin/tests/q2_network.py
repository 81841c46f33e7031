from otter.test_files import test_case

OK_FORMAT = False

name = "q2_network"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_nin_output(nin):
    from convlab import public as checks
    checks.output_layer(nin, 10, activation='logits', name='nin')

@test_case(points=2.5, hidden=True)
def test_nin_structure(nin):
    from convlab import checks
    checks.nin_network(nin, classes=10, num_1x1=2, name='nin')

@test_case(points=1, hidden=True)
def test_nin_outputs_and_loss(nin):
    from convlab import checks
    checks.outputs_match_loss(nin, 'nin')

