from otter.test_files import test_case

OK_FORMAT = False

name = "q6_confusion"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_confusion_plotted(fig_cm, confusion):
    from convlab import public as checks
    checks.figure_shows_matrix(fig_cm, confusion, 'fig_cm')

