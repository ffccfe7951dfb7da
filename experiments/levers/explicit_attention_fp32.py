import time, torch, sys, statistics, math
import torch.nn.functional as F
sys.path.insert(0,'.')
import model as M
from model import CharTransformer, ModelConfig
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer, train_step
x=torch.randint(0,65,(32,128)); y=torch.randint(0,65,(32,128))
orig = F.scaled_dot_product_attention
mask = torch.full((128,128), float('-inf')).triu(1)
def explicit(q,k,v,dropout_p=0.0,is_causal=False):
    s = (q @ k.transpose(-2,-1)) * (1/math.sqrt(q.size(-1)))
    if is_causal: s = s + mask
    return torch.softmax(s,-1) @ v
def mk():
    torch.manual_seed(0); m=CharTransformer(ModelConfig(vocab_size=65)); o=make_optimizer(m,TrainConfig())
    return lambda: train_step(m,o,x,y,1.0)
a=mk(); b=mk()
def run_b():
    M.F.scaled_dot_product_attention = explicit
    try: b()
    finally: M.F.scaled_dot_product_attention = orig
fns={'sdpa':a,'explicit':run_b}
for f in fns.values(): f(); f()
res={k:[] for k in fns}
for rep in range(6):
    for k,f in fns.items():
        t=time.perf_counter(); f(); f(); res[k].append((time.perf_counter()-t)/2)
for k,v in res.items(): print(k, round(1000*statistics.median(v),1))
