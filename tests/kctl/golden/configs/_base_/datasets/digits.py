train_dataloader = dict(batch_size=64, num_workers=0, dataset=dict(type='Digits', split='train'))
