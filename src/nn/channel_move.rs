//! A tensor's channels moved between first and last, as a tract op.
//!
//! Where a model turns its channels around (the pose detector's heads; the
//! hand re-crop model's input and its first convolution's output where that
//! convolution stays channels first, without AVX2 and FMA), tract moves the
//! axis with a general strided copy: 0.16 ms for the re-crop model's 256 x
//! 256 x 3 input, whose three values a pixel make its innermost loop three
//! long. With a batch of one such a move is a transpose of a matrix,
//! channels x pixels; for a few channels (up to 16) this op copies it in an
//! order that stays in cache: alone, 39 us for that input and 12 us for the
//! 128 x 128 x 8 output after it (tract: about 160 and 65); in the model,
//! whose input comes partly from the other core's cache, the two take 0.14
//! ms a run against 0.23. A value is copied, never computed: the bits are
//! the same.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use std::ops::Range;

use super::conv_op::{self, FixedShapeOp};
use super::parallel;

/// The most channels this op moves: with more, tract's copy runs as fast
/// (the pose detector's moves of 24-1152 channels took 0.27-0.32 ms on
/// either).
const FEW: usize = 16;

/// A move of one axis of an f32 tensor that is a transpose of a matrix with
/// few rows or few columns: the axis moved is the first one longer than one
/// and goes last, or is the last and goes in front of every axis longer than
/// one, and it or the axes it passes hold at most [`FEW`] values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelMove {
    /// The input as a matrix: rows x columns (rows are the moved axis when
    /// it comes first, columns when it is last).
    rows: usize,
    columns: usize,
    input_shape: TVec<usize>,
    output_shape: TVec<usize>,
}

impl ChannelMove {
    /// The transpose that `AxisOp::Move(from, to)` is on `shape`, or `None`
    /// when that move is not a transpose of a matrix with at most [`FEW`]
    /// rows or columns.
    pub fn for_move(shape: &[usize], from: usize, to: usize) -> Option<ChannelMove> {
        let rank = shape.len();
        if from >= rank || to >= rank || from == to {
            return None;
        }
        let (first, last) = (from.min(to), from.max(to));
        // Only ones before the axes moved, and the last axis among them:
        // then the tensor is one matrix, [first] x [first + 1 ..= last] or
        // [first ..= last - 1] x [last].
        if last != rank - 1 || shape[..first].iter().any(|&d| d != 1) {
            return None;
        }
        let volume: usize = shape.iter().product();
        let rows = if from < to {
            shape[from]
        } else {
            volume / shape[from].max(1)
        };
        let columns = volume.checked_div(rows)?;
        if rows.min(columns) > FEW {
            return None;
        }
        let mut output_shape: TVec<usize> = shape.into();
        let moved = output_shape.remove(from);
        output_shape.insert(to, moved);
        Some(ChannelMove {
            rows,
            columns,
            input_shape: shape.into(),
            output_shape,
        })
    }

    /// `output[c * rows + r] = input[r * columns + c]`, each output row in
    /// order, its values `columns` apart in the input (few rows or columns:
    /// a few lines read over and over, in cache). In bands of output rows on
    /// the free threads of the current pool when there are many (a frame's
    /// models leave half the input in the other core's cache).
    pub fn transpose(&self, input: &[f32], output: &mut [f32]) {
        let (rows, columns) = (self.rows, self.columns);
        let input = &input[..rows * columns];
        let output = &mut output[..rows * columns];
        if columns <= FEW {
            // A few output rows (3 for an RGB input) do not split evenly.
            self.transpose_rows(input, 0..columns, output);
            return;
        }
        parallel::for_each_band(output, rows, rows, |out_rows, band| {
            self.transpose_rows(input, out_rows, band)
        });
    }

    /// Output rows `out_rows` (input columns) into `band`, which holds
    /// those rows alone.
    fn transpose_rows(&self, input: &[f32], out_rows: Range<usize>, band: &mut [f32]) {
        let (rows, columns) = (self.rows, self.columns);
        for (c, out_row) in out_rows.zip(band.chunks_exact_mut(rows)) {
            let column = input[c..].iter().step_by(columns);
            for (to, &value) in out_row.iter_mut().zip(column) {
                *to = value;
            }
        }
    }
}

impl FixedShapeOp for ChannelMove {
    fn input_shape(&self) -> TVec<usize> {
        self.input_shape.clone()
    }

    fn output_shape(&self) -> TVec<usize> {
        self.output_shape.clone()
    }

    fn compute(&self, input: &[f32], output: &mut [f32]) {
        self.transpose(input, output)
    }
}

impl Op for ChannelMove {
    fn name(&self) -> StaticName {
        "ChannelMove".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?} -> {:?} ({} x {} transposed)",
            self.input_shape, self.output_shape, self.rows, self.columns
        )])
    }

    op_as_typed_op!();
}

conv_op::fixed_shape_tract_op!(ChannelMove {});

#[cfg(test)]
mod tests {
    use super::*;

    /// tract's own move of `shape`'s axis `from` to `to`: its shape and
    /// values.
    fn tracts(shape: &[usize], from: usize, to: usize, values: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let tensor = Tensor::from_shape(shape, values).unwrap();
        let moved = tensor.move_axis(from, to).unwrap();
        let view = moved.to_plain_array_view::<f32>().unwrap();
        (view.shape().to_vec(), view.iter().copied().collect())
    }

    #[test]
    fn moves_as_tract_does_in_either_direction() {
        // Channels last to first and back, with and without a batch axis,
        // over one axis or several.
        for (shape, from, to) in [
            (vec![1, 256, 256, 3], 3, 1),
            (vec![1, 8, 128, 128], 1, 3),
            (vec![28, 28, 16], 2, 0),
            (vec![5, 28, 28], 0, 2),
            (vec![1, 1, 5, 7, 33], 2, 4),
            (vec![1, 17, 3, 9], 3, 1),
        ] {
            let volume: usize = shape.iter().product();
            let values: Vec<f32> = (0..volume).map(|i| i as f32).collect();
            let op = ChannelMove::for_move(&shape, from, to).unwrap();
            let mut ours = vec![f32::NAN; volume];
            op.compute(&values, &mut ours);
            let (shape_theirs, theirs) = tracts(&shape, from, to, &values);
            assert_eq!(ours, theirs, "{shape:?} {from}->{to}");
            assert_eq!(&*op.output_shape(), &*shape_theirs, "{shape:?}");
        }
    }

    #[test]
    fn refuses_moves_that_are_no_transpose() {
        // A batch of two; the last axis not among those moved; a move to
        // the middle of three; no move at all; many rows and many columns
        // (tract's own copy is as fast there).
        assert!(ChannelMove::for_move(&[2, 8, 4, 4], 1, 3).is_none());
        assert!(ChannelMove::for_move(&[1, 8, 4, 4], 1, 2).is_none());
        assert!(ChannelMove::for_move(&[1, 8, 4, 4], 3, 2).is_none());
        assert!(ChannelMove::for_move(&[1, 8, 4, 4], 2, 2).is_none());
        assert!(ChannelMove::for_move(&[1, 8, 4, 4], 1, 7).is_none());
        assert!(ChannelMove::for_move(&[1, 96, 28, 28], 1, 3).is_none());
        assert!(ChannelMove::for_move(&[1, 28, 28, 17], 3, 1).is_none());
        assert!(ChannelMove::for_move(&[1, 28, 28, 16], 3, 1).is_some());
    }
}
