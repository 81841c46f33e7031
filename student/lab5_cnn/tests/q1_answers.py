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

