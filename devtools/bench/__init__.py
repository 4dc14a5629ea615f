"""``make bench``: one module per benchmark, ``run`` runs them."""
