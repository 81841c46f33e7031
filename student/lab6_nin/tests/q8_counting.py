from otter.test_files import test_case

OK_FORMAT = False

name = "q8_counting"
points = 6

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_counts_format(nin_params, nin_mults, nin_memory):
    from convlab import public as checks
    checks.is_integer(nin_params, 'nin_params')
    checks.is_integer(nin_mults, 'nin_mults')
    checks.is_integer(nin_memory, 'nin_memory')

