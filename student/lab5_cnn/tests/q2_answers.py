from otter.test_files import test_case

OK_FORMAT = False

name = "q2_answers"
points = 4

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_answer_types_2(bn_param_names, bn_params_per_layer, trainable_params_2, non_trainable_params_2):
    from convlab import public as checks
    checks.is_integer_list(bn_params_per_layer, 'bn_params_per_layer')
    checks.is_integer(trainable_params_2, 'trainable_params_2')
    checks.is_integer(non_trainable_params_2, 'non_trainable_params_2')
    checks.is_string_list(bn_param_names, 'bn_param_names')

