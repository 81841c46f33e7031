from otter.test_files import test_case

OK_FORMAT = False

name = "q4_answers"
points = 3

@test_case(points=0.5, hidden=False, 
    success_message="Базовые проверки пройдены. При оценивании будут выполнены дополнительные скрытые проверки.")
def test_answer_types_4(accuracy_4, layers_without_params_4, input_shape_4):
    from convlab import public as checks
    checks.is_fraction(accuracy_4, 'accuracy_4')
    checks.is_string_list(layers_without_params_4, 'layers_without_params_4')
    checks.is_shape(input_shape_4, 'input_shape_4')

@test_case(points=0.5, hidden=True)
def test_accuracy_4(accuracy_4, model4, x_test):
    from convlab import checks
    checks.answer_accuracy(accuracy_4, model4, 'cifar10', 'accuracy_4', x_test=x_test)

@test_case(points=1, hidden=True)
def test_layers_without_params_4(layers_without_params_4, model4):
    from convlab import checks
    checks.same_names(layers_without_params_4, checks.parameterless_layer_types(model4), 'layers_without_params_4')

@test_case(points=1, hidden=True)
def test_input_shape_4(input_shape_4):
    from convlab import checks
    checks.answer_equals(tuple(input_shape_4), checks.image_shape('cifar10'), 'input_shape_4')

