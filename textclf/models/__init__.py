"""The networks and views a saved model holds, the decision made from their probabilities, and the model folder."""
