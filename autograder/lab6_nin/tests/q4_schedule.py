from otter.test_files import test_case

OK_FORMAT = False

name = "q4_schedule"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_schedule_example_format(schedule_example, EPOCHS):
    from convlab import public as checks
    import numbers
    ok = len(schedule_example) == EPOCHS and all((isinstance(v, numbers.Real) for v in schedule_example))
    checks.require(ok, 'schedule_example', f'список из {EPOCHS} чисел', checks.show(schedule_example))

@test_case(points=3.5, hidden=True)
def test_cosine_values(cosine_lr):
    from convlab import checks
    checks.cosine_probed(cosine_lr)

