"""Public names of CuPy 14.2.0, listed with dir() on an installed copy (no GPU needed).

The fake device offers only these, so code that calls something CuPy lacks fails here too.
"""

UFUNCS = frozenset(
    """
    abs absolute acos acosh add arccos arccosh arcsin arcsinh arctan arctan2 arctanh asin asinh
    atan atan2 atanh bitwise_and bitwise_count bitwise_invert bitwise_left_shift bitwise_not
    bitwise_or bitwise_right_shift bitwise_xor cbrt ceil conj conjugate copysign cos cosh
    deg2rad degrees divide divmod equal exp exp2 expm1 fabs fix float_power floor floor_divide
    fmax fmin fmod frexp gcd greater greater_equal heaviside hypot i0 invert isfinite isinf
    isnan lcm ldexp left_shift less less_equal log log10 log1p log2 logaddexp logaddexp2
    logical_and logical_not logical_or logical_xor maximum minimum mod modf multiply negative
    nextafter not_equal positive pow power rad2deg radians reciprocal remainder right_shift rint
    sign signbit sin sinc sinh sqrt square subtract tan tanh true_divide trunc
    """.split()
)

FUNCTIONS = frozenset(
    """
    all allclose alltrue amax amin angle any append apply_along_axis apply_over_axes arange
    argmax argmin argpartition argsort argwhere around array array2string array_equal
    array_equiv array_repr array_split array_str asanyarray asarray asarray_chkfinite
    ascontiguousarray asfarray asfortranarray asnumpy astype atleast_1d atleast_2d atleast_3d
    average bartlett base_repr binary_repr bincount blackman broadcast_arrays broadcast_shapes
    broadcast_to byte_bounds can_cast choose clear_memo clip column_stack common_type compress
    concat concatenate convolve copy copyto corrcoef correlate count_nonzero cov cross cumprod
    cumproduct cumsum cumulative_prod cumulative_sum delete diag diag_indices diag_indices_from
    diagflat diagonal diff digitize disp dot dsplit dstack ediff1d einsum empty empty_like
    expand_dims extract eye fill_diagonal find_common_type flatnonzero flip fliplr flipud
    format_float_positional format_float_scientific fromDlpack from_dlpack frombuffer fromfile
    fromfunction fromiter fromstring full full_like fuse genfromtxt get_array_module
    get_array_wrap get_default_memory_pool get_default_pinned_memory_pool get_printoptions
    gradient hamming hanning histogram histogram2d histogramdd hsplit hstack identity imag in1d
    indices inner interp intersect1d is_available isclose iscomplex iscomplexobj isdtype
    isfortran isin isneginf isposinf isreal isrealobj isscalar issctype issubclass_ issubdtype
    issubsctype iterable ix_ kaiser kron lexsort linspace load loadtxt logspace
    make_aligned_dtype mask_indices matmul matrix_transpose max may_share_memory mean median
    memoize meshgrid min min_scalar_type mintypecode moveaxis msort nan_to_num nanargmax
    nanargmin nancumprod nancumsum nanmax nanmean nanmedian nanmin nanprod nanstd nansum nanvar
    ndim nonzero obj2sctype ones ones_like outer packbits pad partition percentile permute_dims
    piecewise place poly polyadd polyfit polymul polysub polyval printoptions prod product
    promote_types ptp put put_along_axis putmask quantile ravel ravel_multi_index real
    real_if_close repeat require reshape resize result_type roll rollaxis roots rot90 round
    round_ row_stack safe_eval save savetxt savez savez_compressed sctype2char searchsorted
    select set_printoptions set_string_function setdiff1d setxor1d shape shares_memory
    show_config size sometrue sort sort_complex split squeeze stack std sum swapaxes take
    take_along_axis tensordot tile trace transpose trapezoid trapz tri tril tril_indices
    tril_indices_from trim_zeros triu triu_indices triu_indices_from typename union1d unique
    unique_all unique_counts unique_inverse unique_values unpackbits unravel_index unwrap vander
    var vdot vsplit vstack where who zeros zeros_like
    """.split()
)

NDARRAY_METHODS = frozenset(
    """
    T all any argmax argmin argpartition argsort astype base byteswap choose clip compress conj
    conjugate copy cstruct cumprod cumsum data device diagonal dot dtype dump dumps fill flags
    flat flatten get imag item itemsize mT max mdspan mean min nbytes ndim nonzero partition
    prod ptp put ravel real reduced_view repeat reshape round scatter_add scatter_max
    scatter_min searchsorted set shape size sort squeeze std strides sum swapaxes take toDlpack
    tobytes tofile tolist trace transpose var view
    """.split()
)

GENERATOR_METHODS = frozenset(
    """
    beta binomial chisquare dirichlet exponential f gamma geometric hypergeometric integers
    logseries poisson power random standard_exponential standard_gamma standard_normal uniform
    """.split()
)
