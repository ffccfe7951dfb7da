import torch, time
import torch.nn.functional as F
def t(f, n=3000):
    for _ in range(200): f()
    s=time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter()-s)/n*1e6
with torch.inference_mode():
  for th in (2,1):
    torch.set_num_threads(th)
    x=torch.randn(1,1,256); x2=x.view(1,256); xv=x.view(256)
    w=torch.randn(1024,256); b=torch.randn(1024); wt=w.t().contiguous()
    print(th, 'F.linear 3d', round(t(lambda: F.linear(x,w,b)),1),
      'F.linear 2d', round(t(lambda: F.linear(x2,w,b)),1),
      'addmm wt', round(t(lambda: torch.addmm(b,x2,wt)),1),
      'mv', round(t(lambda: torch.mv(w,xv)),1),
      'addmv', round(t(lambda: torch.addmv(b,w,xv)),1),
      'gelu1024', round(t(lambda: F.gelu(b)),1),
      'add', round(t(lambda: b+b),1))
