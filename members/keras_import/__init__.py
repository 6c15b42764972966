"""The Keras import: Keras models (.h5, .keras) rebuilt as torch modules without TensorFlow (``converter``).

May import: ``ensemble``'s core only (the ``keras`` member at the top of ``members`` uses it).
"""
