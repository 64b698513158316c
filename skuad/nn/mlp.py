"""Fully connected networks for feature vectors."""

from torch import nn

# Leaky ReLU in the autoencoders (as Ruff et al.), ReLU in CLAD's classifier.
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}


class MLP(nn.Sequential):
    """Linear layers with an activation between them and a linear output.

    Parameters
    ----------
    n_inputs : int
        Width of the input.
    hidden_layer_sizes : sequence of int
        Widths of the hidden layers, in order.
    n_outputs : int
        Width of the (linear) output layer.
    activation : str
        Key of ``ACTIVATIONS`` applied after every hidden layer.
    bias : bool
        Whether the linear layers have bias terms. Deep SVDD needs ``bias=False``
        (a bias lets the network map every input to the centre).
    """

    def __init__(
        self, n_inputs, hidden_layer_sizes, n_outputs, *, activation="leaky_relu", bias=True
    ):
        layers = []
        width = n_inputs
        for size in hidden_layer_sizes:
            layers += [nn.Linear(width, size, bias=bias), ACTIVATIONS[activation]()]
            width = size
        layers.append(nn.Linear(width, n_outputs, bias=bias))
        super().__init__(*layers)
