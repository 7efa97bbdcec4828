"""The networks and views a saved model holds, and the model folder."""
