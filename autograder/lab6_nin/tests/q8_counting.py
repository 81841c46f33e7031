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

@test_case(points=1.5, hidden=True)
def test_count_params(count_params):
    from convlab import checks
    checks.counter_probed(count_params, 'params')

@test_case(points=1.5, hidden=True)
def test_count_mults(count_mults):
    from convlab import checks
    checks.counter_probed(count_mults, 'mults')

@test_case(points=1.5, hidden=True)
def test_count_memory(count_memory):
    from convlab import checks
    checks.counter_probed(count_memory, 'memory')

@test_case(points=1, hidden=True)
def test_nin_counts(nin_params, nin_mults, nin_memory, nin, BATCH_SIZE):
    from convlab import checks
    from convlab.checks import nin as reference
    checks.answer_equals(nin_params, reference.reference_params(nin), 'nin_params')
    checks.answer_equals(nin_mults, reference.reference_mults(nin), 'nin_mults')
    checks.answer_equals(nin_memory, reference.reference_memory(nin, BATCH_SIZE), 'nin_memory')

