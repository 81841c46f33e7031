from otter.test_files import test_case

OK_FORMAT = False

name = "q1_block"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_block_samples_built(block_samples):
    from convlab import checks
    for sample in block_samples:
        checks.describe_layers(sample)
    assert len(block_samples) >= 3, 'block_samples: ожидалось не менее 3 блоков'

@test_case(points=3.5, hidden=True)
def test_nin_block_structure(block_configs, block_samples):
    from convlab import checks
    checks.nin_block_samples(block_configs, block_samples)

