import time, torch, sys, statistics
import torch.nn.functional as F
sys.path.insert(0,'.')
import model as M
from model import CharTransformer, ModelConfig
from tinychar.settings import TrainConfig
from tinychar.step import make_optimizer
x=torch.randint(0,65,(32,128)); y=torch.randint(0,65,(32,128))
def make(compile_=False, fused=False):
    torch.manual_seed(0)
    m=CharTransformer(ModelConfig(vocab_size=65))
    opt=make_optimizer(m, TrainConfig())
    if fused:
        opt=torch.optim.AdamW(opt.param_groups, lr=1e-3, betas=(0.9,0.99), fused=True)
    fwd = torch.compile(m) if compile_ else m
    def step():
        _,loss=fwd(x,y); opt.zero_grad(set_to_none=True); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step()
        return loss.item()
    return step
variants = {}
variants['eager'] = make()
variants['fusedadam'] = make(fused=True)
t=time.time(); variants['compiled'] = make(compile_=True); variants['compiled']()
print('compile time', time.time()-t)
orig_gelu = F.gelu
def run_variant(name):
    if name == 'tanh':
        M.F.gelu = lambda a: orig_gelu(a, approximate='tanh'); fn = variants['eager']
    else:
        M.F.gelu = orig_gelu; fn = variants[name]
    fn(); fn()
    ts=[]
    for _ in range(6):
        t=time.perf_counter(); fn(); ts.append(time.perf_counter()-t)
    M.F.gelu = orig_gelu
    return ts
names=['eager','fusedadam','tanh','compiled']
res={n:[] for n in names}
for rep in range(3):
    for n in names: res[n]+=run_variant(n)
for n in names: print(n, 'median ms', round(1000*statistics.median(res[n]),1), 'tok/s', round(4096/statistics.median(res[n])))
