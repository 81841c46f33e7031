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

@test_case(points=1, hidden=True)
def test_bn_param_names(bn_param_names):
    from convlab import checks
    checks.same_names(bn_param_names, {'gamma', 'beta', 'moving_mean', 'moving_variance'}, 'bn_param_names')

@test_case(points=1, hidden=True)
def test_bn_params_per_layer(bn_params_per_layer, model2):
    from convlab import checks
    checks.answer_equals(list(bn_params_per_layer), checks.batchnorm_param_counts(model2), 'bn_params_per_layer')

@test_case(points=1.5, hidden=True)
def test_trainable_split_2(trainable_params_2, non_trainable_params_2, model2):
    from convlab import checks
    trainable, non_trainable = checks.trainable_split(model2)
    checks.answer_equals(trainable_params_2, trainable, 'trainable_params_2')
    checks.answer_equals(non_trainable_params_2, non_trainable, 'non_trainable_params_2')

