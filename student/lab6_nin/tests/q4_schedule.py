from otter.test_files import test_case

OK_FORMAT = False

name = "q4_schedule"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_schedule_values_format(schedule_points, schedule_values):
    import numbers
    assert len(schedule_values) == len(schedule_points), 'schedule_values: ожидалось по значению на точку'
    assert all((isinstance(v, numbers.Real) for v in schedule_values)), 'schedule_values: ожидалось числа'

