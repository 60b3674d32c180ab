import torch

from mnist_lab.augment import BACKGROUND, random_affine


def digit_batch(n=8):
    X = torch.full((n, 1, 28, 28), BACKGROUND)
    X[:, :, 8:20, 12:16] = 2.8  # a bar: bright ink on a black background, like normalised MNIST
    return X


def test_identity_parameters_change_nothing():
    X = digit_batch()
    assert torch.allclose(random_affine(X, degrees=0, shift=0, scale=(1, 1)), X, atol=1e-5)


def test_background_stays_black_and_ink_is_kept():
    X = digit_batch()
    Y = random_affine(X, torch.Generator().manual_seed(0))
    assert Y.shape == X.shape
    assert torch.isclose(Y[:, :, 0, 0], torch.tensor(BACKGROUND)).all()  # corners: new pixels are black
    ink = (Y - BACKGROUND).sum((1, 2, 3)) / (X - BACKGROUND).sum((1, 2, 3))
    assert ((ink > 0.7) & (ink < 1.3)).all()  # scaled by at most 10 %: the ink's area stays within ~20 %


def test_each_image_moves_differently_and_a_seed_repeats_it():
    X = digit_batch()
    a = random_affine(X, torch.Generator().manual_seed(1))
    b = random_affine(X, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])


def test_shift_moves_the_centre_by_at_most_the_limit():
    X = digit_batch(64)
    Y = random_affine(X, torch.Generator().manual_seed(2), degrees=0, shift=2.0, scale=(1, 1))
    w = (Y - BACKGROUND).clamp(min=0)[:, 0]
    i = torch.arange(28.0)
    cy = (w.sum(2) * i).sum(1) / w.sum((1, 2))
    cx = (w.sum(1) * i).sum(1) / w.sum((1, 2))
    w0 = (X - BACKGROUND)[0, 0]
    cy0 = ((w0.sum(1) * i).sum() / w0.sum()).item()
    cx0 = ((w0.sum(0) * i).sum() / w0.sum()).item()
    assert (cy - cy0).abs().max() <= 2.05 and (cx - cx0).abs().max() <= 2.05
    assert (cy - cy0).abs().max() > 1  # and it does move


def test_large_rotations_turn_a_bar():
    Y = random_affine(digit_batch(32), torch.Generator().manual_seed(3), degrees=90, shift=0, scale=(1, 1))
    w = (Y - BACKGROUND).clamp(min=0)[:, 0]
    wide = (w.sum(1) > 0.5).sum(1) > (w.sum(2) > 0.5).sum(1)  # wider than tall: turned by more than ~45 degrees
    assert wide.any() and (~wide).any()


def test_shifted_moves_the_image_and_fills_with_black():
    from mnist_lab.augment import shifted

    X = torch.randn(2, 1, 28, 28)
    right = shifted(X, right=3)
    assert torch.equal(right[..., 3:], X[..., :-3]) and (right[..., :3] == BACKGROUND).all()
    up_left = shifted(X, right=-2, down=-1)
    assert torch.equal(up_left[..., :-1, :-2], X[..., 1:, 2:]) and (up_left[..., -1, :] == BACKGROUND).all()
    assert torch.equal(shifted(X), X)


def test_flags_are_drawn_on_ones_only_to_the_upper_left():
    from mnist_lab.augment import with_flags

    X = digit_batch(6)  # a vertical bar: rows 8-19, columns 12-15
    y = torch.tensor([1, 1, 1, 7, 7, 7])
    Y = with_flags(X, y, torch.Generator().manual_seed(0), share=1.0, bases=0.0)
    assert torch.equal(Y[3:], X[3:])  # other digits untouched
    added = (Y[:3] - X[:3]).clamp_min(0)
    assert (added.sum((1, 2, 3)) > 2).all()  # every 1 got ink ...
    rows, cols = torch.nonzero(added[:, 0] > 0.5, as_tuple=True)[1:]
    assert (cols <= 15).all() and (rows <= 8 + 12 // 2).all()  # ... left of the bar's right edge, in its upper half
    assert torch.equal(with_flags(X, y, share=0.0), X)


def test_bases_go_under_the_ones_and_crossbars_through_the_sevens():
    from mnist_lab.augment import with_crossbars, with_flags

    X = digit_batch(4)  # a vertical bar: rows 8-19, columns 12-15
    y = torch.tensor([1, 1, 7, 7])
    based = (with_flags(X, y, torch.Generator().manual_seed(0), share=1.0, bases=1.0) - X).clamp_min(0)[:2, 0]
    rows, cols = torch.nonzero(based[:, 14:] > 0.5, as_tuple=True)[1:]
    assert len(rows) and (rows + 14 >= 17).all() and cols.min() < 12 and cols.max() > 15  # low, on both sides
    crossed = (with_crossbars(X, y, torch.Generator().manual_seed(0), share=1.0) - X).clamp_min(0)[:, 0]
    assert crossed[:2].sum() == 0  # ones untouched
    rows, cols = torch.nonzero(crossed[2:] > 0.5, as_tuple=True)[1:]
    assert ((rows >= 12) & (rows <= 17)).all() and cols.min() < 12 and cols.max() > 15  # level, mid-height


def test_drawing_augmentation_keeps_shape_range_and_repeats_with_a_seed():
    from mnist_lab.augment import like_drawings

    X, y = digit_batch(16), torch.ones(16, dtype=torch.long)
    a = like_drawings(X, y, torch.Generator().manual_seed(2))
    b = like_drawings(X, y, torch.Generator().manual_seed(2))
    assert a.shape == X.shape and torch.equal(a, b)
    assert torch.isclose(a[:, :, 0, 0], torch.tensor(BACKGROUND), atol=1e-4).all()
    assert (a.amax((1, 2, 3)) > 2.0).all()  # strokes thinned, never faded to grey
    assert not torch.allclose(a[0], a[1])
