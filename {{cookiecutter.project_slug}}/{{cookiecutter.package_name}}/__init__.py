"""One model, trained with Lightning and by hand, side by side: see README.md."""
