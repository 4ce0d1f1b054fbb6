train = dict(max_iter=10
