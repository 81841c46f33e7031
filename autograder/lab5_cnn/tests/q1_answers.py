from otter.test_files import test_case

OK_FORMAT = False

name = "q1_answers"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_answer_types_1(total_params_1, train_vectors_1, accuracy_1, y_pred_labels):
    from convlab import public as checks
    checks.is_integer(total_params_1, 'total_params_1')
    checks.is_integer(train_vectors_1, 'train_vectors_1')
    checks.is_fraction(accuracy_1, 'accuracy_1')
    checks.is_label_vector(y_pred_labels, 'y_pred_labels')

@test_case(points=1, hidden=True)
def test_total_params_1(total_params_1, model1):
    from convlab import checks
    checks.answer_equals(total_params_1, model1.count_params(), 'total_params_1')

@test_case(points=1, hidden=True)
def test_train_vectors_1(train_vectors_1):
    from convlab import checks
    checks.answer_equals(train_vectors_1, checks.train_size('mnist'), 'train_vectors_1')

@test_case(points=0.5, hidden=True)
def test_accuracy_1(accuracy_1, model1, x_test):
    from convlab import checks
    checks.answer_accuracy(accuracy_1, model1, 'mnist', 'accuracy_1', x_test=x_test)

@test_case(points=1, hidden=True)
def test_pred_labels(y_pred_labels, model1, x_test):
    from convlab import checks
    checks.predicted_labels(y_pred_labels, model1, 'mnist', x_test=x_test)

