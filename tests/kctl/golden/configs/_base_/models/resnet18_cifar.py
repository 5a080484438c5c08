model = dict(type='ImageClassifier', backbone=dict(type='ResNet_CIFAR', depth=18))
