"""``bisenet export``: write ONNX (and optionally a TensorRT engine), then verify vs PyTorch.

The ONNX file takes one fixed ``--input-size`` (a multiple of 32 avoids in-graph padding);
only the batch axis can be dynamic. ``labels`` is the argmax in the graph (uint8, or int32 for
TensorRT), ``confidence`` the max softmax. Every artifact is run on sample images (the packaged
demo frames unless ``--verify-images`` is given) and its pixel agreement with PyTorch fp32 is
printed.

Examples::

    bisenet export --model city.pth --input-size 512x1024 -o city_512x1024.onnx
    bisenet export --outputs labels --dynamic-batch --input-size 384x480 -o camvid.onnx
    bisenet export --input-size 512x1024 --int8 --calibration-images frames/ -o m.onnx
    bisenet export --input-size 512x1024 --tensorrt --precision fp16 -o m.onnx   # on a GPU
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .segment_image import parse_size, resolve_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split('\n', 1)[1]
    parser.add_argument('--model', help='checkpoint (default: the packaged CamVid model)')
    parser.add_argument('-o', '--output', help='ONNX file (default: <model>_<H>x<W>.onnx)')
    parser.add_argument('--input-size', type=parse_size, default=(512, 1024),
                        help='HxW the artifact takes (default: 512x1024)')
    parser.add_argument('--outputs', default='logits,labels',
                        help='comma list of logits, labels, confidence (default: logits,labels)')
    parser.add_argument('--batch', type=int, default=1, help='batch size (max with dynamic)')
    parser.add_argument('--dynamic-batch', action='store_true', help='symbolic batch axis')
    parser.add_argument('--labels-dtype', choices=('uint8', 'int32'), default='uint8')
    parser.add_argument('--fp16', action='store_true', help='half weights and I/O')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--label-set', help="label set name or YAML (default: the model's)")
    parser.add_argument('--int8', action='store_true',
                        help='also write <output>_int8.onnx (static, for ONNX Runtime CPU)')
    parser.add_argument('--int8-layers', choices=('compute', 'all'), default='compute',
                        help='with --int8: quantize the compute-heavy dense convolutions '
                        '(default, fastest on ONNX Runtime) or every layer')
    parser.add_argument('--tensorrt', action='store_true', help='also build a TensorRT engine')
    parser.add_argument('--precision', choices=('fp32', 'fp16', 'int8'), default='fp16',
                        help='TensorRT engine precision (default: fp16)')
    parser.add_argument('--engine-dir', help='engine folder (default: beside the ONNX file)')
    parser.add_argument('--calibration-images', help='folder of your images for int8')
    parser.add_argument('--verify-images', nargs='*', help='images/folders to verify on')


def run(args: argparse.Namespace) -> int:
    from ..export.onnx_export import export_onnx
    from ..export.verify import sample_images, verify_backend
    from ..inference.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ..model.checkpoint import load_model
    model_path = resolve_model(args.model)
    model = load_model(model_path, label_set=args.label_set)
    label_set = model.label_set
    size = args.input_size
    output = Path(args.output or f'{model_path.stem}_{size[0]}x{size[1]}.onnx')
    outputs = tuple(o.strip() for o in args.outputs.split(',') if o.strip())
    if size[0] % 32 or size[1] % 32:
        print(f'note: {size[0]}x{size[1]} is not a multiple of 32; the graph pads inside')
    export_onnx(model, output, size, batch=args.batch, dynamic_batch=args.dynamic_batch,
                outputs=outputs, labels_dtype=args.labels_dtype, fp16=args.fp16,
                opset=args.opset, label_set=label_set, check=True)
    print(f'wrote {output} (onnx.checker passed): input '
          f"{'N' if args.dynamic_batch else args.batch}x3x{size[0]}x{size[1]}, outputs "
          f"{', '.join(outputs)}")
    images = sample_images(args.verify_images)
    if args.fp16:
        print('fp16 ONNX: verify it on a GPU (ONNX Runtime CUDA or --tensorrt)')
    else:
        with OnnxRuntimeBackend(output) as backend:
            result = verify_backend(model, backend, images, size, label_set)
            print(f'onnxruntime fp32 {result.summary()}')
    if args.int8:
        if not args.calibration_images:
            raise ValueError('--int8 needs --calibration-images FOLDER (images like yours)')
        from ..export.quantize import quantize_int8
        int8_path = output.with_name(output.stem + '_int8.onnx')
        quantize_int8(output, int8_path, args.calibration_images, size,
                      (label_set.mean, label_set.std), layers=args.int8_layers)
        with OnnxRuntimeBackend(int8_path) as backend:
            print(f'wrote {int8_path}; onnxruntime int8 '
                  f'{verify_backend(model, backend, images, size, label_set).summary()}')
    if args.tensorrt:
        from ..inference.backends.tensorrt_backend import TensorRTBackend
        engine_dir = Path(args.engine_dir) if args.engine_dir else output.parent
        with TensorRTBackend(model, device='cuda', precision=args.precision, input_size=size,
                             max_batch=args.batch, dynamic_batch=args.dynamic_batch,
                             cache_dir=engine_dir, label_set=label_set,
                             calibration_images=args.calibration_images) as backend:
            print(f'tensorrt {args.precision} engine in {engine_dir}: '
                  f'{verify_backend(model, backend, images, size, label_set).summary()}')
    return 0
