"""Chapter 1 answers as a learner would write them, shared by the grading tests."""

POINTS = {"1.1": 2, "1.2": 3, "1.3": 2, "1.4": 2}
FULL = sum(POINTS.values())

OUTPUT_SIZE = '''def conv_output_size(size, K, stride, padding, dilation):
    ### BEGIN SOLUTION
    span = dilation * (K - 1) + 1
    return (size + 2 * padding - span) // stride + 1
    ### END SOLUTION
'''
CONV_COST = '''def conv_cost(H, W, N, M, K, stride, padding, groups, bias):
    ### BEGIN SOLUTION
    H_out = (H + 2 * padding - K) // stride + 1
    W_out = (W + 2 * padding - K) // stride + 1
    weight = K * K * (N // groups) * M
    return H_out * W_out * weight, weight + (M if bias else 0)
    ### END SOLUTION
'''
INTENSITY = '''def conv_intensity(H, W, N, M, K):
    ### BEGIN SOLUTION
    macs = H * W * K * K * N * M
    return macs / (4 * (N * H * W + K * K * N * M + M * H * W))
    ### END SOLUTION
'''
HEAVIEST = '''heaviest_conv = None
### BEGIN SOLUTION
heaviest_conv = "conv1"
### END SOLUTION
'''
