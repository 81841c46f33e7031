from otter.test_files import test_case

OK_FORMAT = False

name = "q1_block"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_block_example(block_example):
    from convlab import public as checks
    import keras
    checks.require(isinstance(block_example, keras.Model), 'block_example', 'модель Keras (tf.keras.Sequential)', type(block_example).__name__)
    checks.require(len(block_example.output_shape) == 4, 'block_example: форма выхода', '(None, высота, ширина, каналы)', block_example.output_shape)

@test_case(points=3.5, hidden=True)
def test_nin_block_structure(nin_block):
    from convlab import checks
    checks.nin_block_probed(nin_block)

