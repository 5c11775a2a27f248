"""Feature builders: the data contract, point-in-time feature functions, the feature
registry, the training-set builder and the online path for live requests.

``features`` imports none of leadscore's other packages.
"""
