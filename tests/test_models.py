import pytest
import torch

from mnist_lab import MODELS, UserError, build_model, count_parameters, layer_shapes
from mnist_lab.models import OriginalCNN, model_name


def test_original_cnn_is_exactly_the_seed_documents_architecture():
    model = OriginalCNN()
    conv, bn, relu, pool = model.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (1, 32, (5, 5), (2, 2))
    assert isinstance(bn, torch.nn.BatchNorm2d) and bn.num_features == 32
    assert isinstance(relu, torch.nn.ReLU) and pool.kernel_size == 2
    assert (model.fc.in_features, model.fc.out_features) == (6272, 10)
    assert count_parameters(model) == (1 * 25 * 32 + 32) + 2 * 32 + (6272 * 10 + 10)


def test_original_cnn_shapes_follow_the_document():
    shapes = [shape for _, shape in layer_shapes(OriginalCNN())]
    assert shapes == [(32, 28, 28), (32, 28, 28), (32, 28, 28), (32, 14, 14), (6272,), (10,)]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_maps_a_batch_to_ten_scores(name):
    model = build_model(name, seed=0)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert model_name(model) == name


@pytest.mark.parametrize("name", list(MODELS))
def test_the_first_block_is_found_in_every_model_from_its_forward_pass(name):
    """What section 6 shows: the first convolution an image meets and the layers after it up to the next one."""
    from invariants import assert_japanese_message

    from mnist_lab.errors import ArgumentError
    from mnist_lab.inference import activations
    from mnist_lab.models import first_block, first_convolution

    model = build_model(name, seed=0)
    if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):  # nothing to show: one line, not blank
        for find in (first_block, first_convolution):
            with pytest.raises(ArgumentError) as refused:
                find(model)
            assert_japanese_message(refused.value)
        return
    block = first_block(model)
    conv = first_convolution(model)
    assert isinstance(conv, torch.nn.Conv2d) and conv.in_channels == 1  # it reads the image itself
    assert model.get_submodule(block[0][0]) is conv
    assert not any(isinstance(model.get_submodule(n), (torch.nn.Conv2d, torch.nn.Linear)) for n, _ in block[1:])
    maps = activations(model, torch.randn(1, 1, 28, 28), [n for n, _ in block])
    assert all(maps[n].dim() == 4 and maps[n].shape[1] == conv.out_channels for n, _ in block)


def test_the_first_block_follows_the_forward_pass_not_the_definition_order():
    from mnist_lab.models import first_block

    class Backwards(torch.nn.Module):  # layers defined in the opposite order of their use
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8 * 14 * 14, 10)
            self.pool = torch.nn.MaxPool2d(2)
            self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)

        def forward(self, X):
            return self.fc(self.pool(self.conv(X)).flatten(1))

    assert first_block(Backwards()) == [("conv", "畳み込み"), ("pool", "最大プーリング")]


def test_layer_lines_give_each_layers_own_numbers():
    import re

    from mnist_lab.models import layer_table

    def numbers(row):  # the numbers, whatever the words around them
        return [int(n) for n in re.findall(r"\d+", row["働き"])]

    lenet = layer_table(build_model("lenet5"))
    assert numbers(lenet[0])[:4] == [5, 5, 6, 2]  # 5x5, 6 filters, padding 2 keeps 28x28
    assert numbers(lenet[3]) == [5, 5, 16, 4]  # no padding: 14x14 -> 10x10
    assert numbers(lenet[7]) == [400, 120]


def test_seed_makes_weights_reproducible():
    a, b = build_model("quick", seed=1), build_model("quick", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c = build_model("quick", seed=2)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="モデル 'resnet'"):
        build_model("resnet")


def test_lenet5_has_the_papers_61706_parameters():
    from mnist_lab.models import LeNet5

    assert count_parameters(LeNet5()) == 61_706
    assert [shape for _, shape in layer_shapes(LeNet5())][:6] == [(6, 28, 28), (6, 28, 28), (6, 14, 14),
                                                                 (16, 10, 10), (16, 10, 10), (16, 5, 5)]


def test_deep_cnn_uses_batchnorm_and_dropout():
    model = build_model("deep", seed=0)
    kinds = {type(m) for m in model.modules()}
    assert {torch.nn.BatchNorm2d, torch.nn.Dropout} <= kinds
    model.train()
    X = torch.randn(4, 1, 28, 28)
    assert not torch.equal(model(X), model(X))  # dropout is active while training...
    model.eval()
    assert torch.equal(model(X), model(X))  # ...and off for evaluation


def test_ensemble_predicts_the_mean_of_its_members_probabilities():
    model = build_model("ensemble", seed=0).eval()
    X = torch.randn(6, 1, 28, 28)
    with torch.no_grad():
        mean = torch.stack([m(X).softmax(1) for m in model.members]).mean(0)
        assert torch.allclose(model(X).exp(), mean, atol=1e-6)
        assert not torch.equal(model.members[0](X), model.members[1](X))  # different initial weights
    assert count_parameters(model) == 2 * count_parameters(build_model("deep"))
